//! `hakmem-sim explore`: random traces — seeded workload mixes and random
//! fuzz bytes — until a time budget runs out or one fails. A failure is
//! minimized and written into `repro/` with its header.
//!
//! Traces run in a forked worker process, so a crash does not end the
//! exploration: the parent knows which trace was running (the worker
//! announces each one on a pipe) and regenerates it from the seed.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bytes::decode;
use crate::gen::{generate, Mix, SplitMix64};
use crate::minimize::{minimize, MinimizeOptions};
use crate::runner::{run, Failure, FailureKind, RunConfig};
use crate::trace::{with_headers, Op, Trace};

pub struct ExploreOptions {
    pub seconds: f64,
    pub seed: u64,
    /// Ops per trace at most (each trace draws its length).
    pub max_ops: usize,
    pub cfg: RunConfig,
    /// Where to write the minimized failure (`None`: do not write).
    pub out_dir: Option<PathBuf>,
    pub minimize_budget: Duration,
    /// Progress lines on stderr about once a second.
    pub progress: bool,
    /// Run traces in a forked worker (survives crashes). Without it a crash
    /// ends the process.
    pub isolate: bool,
    /// Extra header lines for the repro file (e.g. `zoo: <bug>`).
    pub extra_headers: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct Found {
    pub failure: Failure,
    /// Index of the failing trace, and how it was made.
    pub trace_index: u64,
    pub source: String,
    pub original_len: usize,
    pub minimized: Trace,
    pub minimize_runs: usize,
    /// Time from the start to the first failing run.
    pub time_to_detection: Duration,
    pub path: Option<PathBuf>,
}

#[derive(Debug)]
pub struct ExploreResult {
    pub traces: u64,
    pub ops: u64,
    pub elapsed: Duration,
    pub found: Option<Found>,
}

/// Trace number `index` of an exploration with `seed`, and where it came
/// from (a command that regenerates it).
pub fn trace_for(seed: u64, index: u64, max_ops: usize) -> (Trace, String) {
    let mut r = SplitMix64::new(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let max_ops = max_ops.max(20);
    let ops = 20 + r.below(max_ops - 19);
    if index % 5 == 4 {
        let bytes: Vec<u8> = (0..ops * 3).map(|_| r.next_u64() as u8).collect();
        (
            decode(&bytes),
            format!("random bytes (explore seed {seed}, trace {index})"),
        )
    } else {
        let mix = Mix::ALL[r.below(Mix::ALL.len())];
        let s = r.next_u64();
        let mut t = generate(mix, s, ops);
        let mut source = format!("hakmem-sim gen --mix {mix} --seed {s} --ops {ops}");
        // Every other generated trace parks one exited heap (random bytes
        // say so in their first byte, about as often).
        if r.below(2) == 1 {
            t.parked_heaps = Some(1);
            source.push_str(" --parked-heaps 1");
        }
        (t, source)
    }
}

pub fn explore(opts: &ExploreOptions) -> ExploreResult {
    let start = Instant::now();
    let (traces, ops, failed) = if opts.isolate {
        explore_forked(opts, start)
    } else {
        explore_here(opts, start)
    };
    let found = failed.map(|(index, failure, at)| {
        let (trace, source) = trace_for(opts.seed, index, opts.max_ops);
        let crashed = matches!(failure.kind, FailureKind::Crash { .. });
        let m = minimize(
            &trace,
            &MinimizeOptions {
                cfg: opts.cfg.clone(),
                isolate: opts.isolate || crashed,
                budget: opts.minimize_budget,
                verbose: opts.progress,
            },
        );
        let (minimized, runs) = match m {
            Some(m) if m.failure_id == failure.id() => (m.trace, m.runs),
            _ => (trace.clone(), 0),
        };
        let path = opts
            .out_dir
            .as_deref()
            .and_then(|dir| write_repro(dir, &failure, &minimized, &source, opts).ok());
        Found {
            failure,
            trace_index: index,
            source,
            original_len: trace.ops.len(),
            minimized,
            minimize_runs: runs,
            time_to_detection: at,
            path,
        }
    });
    ExploreResult {
        traces,
        ops,
        elapsed: start.elapsed(),
        found,
    }
}

fn progress(opts: &ExploreOptions, start: Instant, last: &mut Instant, traces: u64, ops: u64) {
    if opts.progress && last.elapsed() >= Duration::from_secs(1) {
        *last = Instant::now();
        let el = start.elapsed().as_secs_f64();
        eprintln!(
            "explore: {traces} traces, {ops} ops, {:.0} ops/s, {el:.0}/{:.0} s",
            ops as f64 / el.max(1e-9),
            opts.seconds
        );
    }
}

fn explore_here(
    opts: &ExploreOptions,
    start: Instant,
) -> (u64, u64, Option<(u64, Failure, Duration)>) {
    let (mut traces, mut ops) = (0u64, 0u64);
    let mut last = Instant::now();
    while start.elapsed().as_secs_f64() < opts.seconds {
        let (t, _) = trace_for(opts.seed, traces, opts.max_ops);
        if let Err(f) = run(&t, &opts.cfg) {
            return (
                traces + 1,
                ops + t.ops.len() as u64,
                Some((traces, f, start.elapsed())),
            );
        }
        traces += 1;
        ops += t.ops.len() as u64;
        progress(opts, start, &mut last, traces, ops);
    }
    (traces, ops, None)
}

/// The worker protocol, one line each: `R <index>` before running a trace,
/// `F <index> <op or -> <id>\t<detail>` on a failure, `D <traces> <ops>`
/// when the time is up.
fn explore_forked(
    opts: &ExploreOptions,
    start: Instant,
) -> (u64, u64, Option<(u64, Failure, Duration)>) {
    let mut next = 0u64;
    let mut ops_total = 0u64;
    loop {
        if start.elapsed().as_secs_f64() >= opts.seconds {
            return (next, ops_total, None);
        }
        let mut fds = [0i32; 2];
        // SAFETY: room for two descriptors.
        if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
            return explore_here(opts, start);
        }
        // SAFETY: the child runs the simulation and exits with _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: our pipe.
            unsafe { libc::close(fds[0]) };
            std::panic::set_hook(Box::new(|_| {}));
            // SAFETY: the write end, owned by this File from now on.
            let mut w = unsafe { std::fs::File::from_raw_fd(fds[1]) };
            let mut i = next;
            let mut ops = 0u64;
            let mut last = Instant::now();
            while start.elapsed().as_secs_f64() < opts.seconds {
                let (t, _) = trace_for(opts.seed, i, opts.max_ops);
                let _ = writeln!(w, "R {i}");
                if let Err(f) = run(&t, &opts.cfg) {
                    let _ = writeln!(
                        w,
                        "F {i} {} {}\t{}",
                        f.op_index.map_or("-".into(), |x| x.to_string()),
                        f.id(),
                        f.detail.replace('\n', " ")
                    );
                    // SAFETY: leave without the parent's destructors.
                    unsafe { libc::_exit(0) };
                }
                i += 1;
                ops += t.ops.len() as u64;
                progress(opts, start, &mut last, i, ops_total + ops);
            }
            let _ = writeln!(w, "D {i} {ops}");
            // SAFETY: as above.
            unsafe { libc::_exit(0) };
        }
        // SAFETY: the child owns the write end.
        unsafe { libc::close(fds[1]) };
        // SAFETY: our read end.
        let r = BufReader::new(unsafe { std::fs::File::from_raw_fd(fds[0]) });
        let mut running = None;
        let mut result = None;
        for line in r.lines().map_while(Result::ok) {
            let mut parts = line.splitn(2, ' ');
            match (parts.next(), parts.next()) {
                (Some("R"), Some(i)) => running = i.parse::<u64>().ok(),
                (Some("F"), Some(rest)) => {
                    let (head, detail) = rest.split_once('\t').unwrap_or((rest, ""));
                    let mut h = head.splitn(3, ' ');
                    let idx: u64 = h.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                    let op = h.next().and_then(|x| x.parse().ok());
                    let id = h.next().unwrap_or("");
                    result = Some((idx, Failure::from_id(op, id, detail.to_string())));
                }
                (Some("D"), Some(rest)) => {
                    let mut h = rest.split(' ');
                    next = h.next().and_then(|x| x.parse().ok()).unwrap_or(next);
                    ops_total += h.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
                }
                _ => {}
            }
        }
        let mut status = 0;
        // SAFETY: our child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        if let Some((idx, f)) = result {
            return (idx + 1, ops_total, Some((idx, f, start.elapsed())));
        }
        if libc::WIFSIGNALED(status) {
            let idx = running.unwrap_or(next);
            let sig = libc::WTERMSIG(status);
            let f = Failure {
                op_index: None,
                op: None,
                kind: FailureKind::Crash { signal: sig },
                detail: format!("the run died from signal {sig}"),
            };
            return (idx + 1, ops_total, Some((idx, f, start.elapsed())));
        }
        if result.is_none() && !libc::WIFSIGNALED(status) && running.is_none() {
            return (next, ops_total, None);
        }
    }
}

/// A file name for a failure: `<area>-<symptom>.trace`, unique in `dir`.
pub fn repro_name(dir: &Path, failure: &Failure, trace: &Trace) -> PathBuf {
    let area = match failure
        .op_index
        .and_then(|i| trace.ops.get(i))
        .or(trace.ops.last())
    {
        Some(Op::Alloc { .. }) => "alloc",
        Some(Op::Free { .. }) => "free",
        Some(Op::FreeInterior { .. } | Op::FreeForeign { .. }) => "misuse",
        Some(Op::Realloc { .. }) => "realloc",
        Some(Op::Drain { .. }) => "drain",
        Some(Op::Collect { .. }) => "collect",
        Some(Op::Exit { .. }) => "exit",
        Some(Op::Trim) => "trim",
        Some(Op::OsFail { .. }) => "os-fail",
        Some(Op::Check) | None => "check",
    };
    let symptom: String = failure
        .id()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let mut p = dir.join(format!("{area}-{symptom}.trace"));
    let mut n = 2;
    while p.exists() {
        p = dir.join(format!("{area}-{symptom}-{n}.trace"));
        n += 1;
    }
    p
}

fn write_repro(
    dir: &Path,
    failure: &Failure,
    t: &Trace,
    source: &str,
    opts: &ExploreOptions,
) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = repro_name(dir, failure, t);
    let mut headers = vec![
        (
            "found-by".to_string(),
            format!("hakmem-sim explore --seed {} ({source})", opts.seed),
        ),
        ("violates".to_string(), failure.id()),
        ("fixed-by".to_string(), "(open)".to_string()),
    ];
    headers.extend(opts.extra_headers.iter().cloned());
    headers.push((
        "failure".to_string(),
        failure.to_string().replace('\n', " "),
    ));
    std::fs::write(&path, with_headers(&headers, t))?;
    Ok(path)
}
