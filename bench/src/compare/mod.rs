//! `hakmem-bench compare`: runs the suite under every allocator, interleaved
//! (A B C … A B C … for each round), each run a child process of this same
//! binary with `LD_PRELOAD` set, then prints and writes the tables and the
//! chart.

mod candidates;
mod child;
mod parallelism;
mod render;
mod suite;
mod summary;
mod svg;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::args::Args;
use candidates::{Candidate, Search, DEFAULT_NAMES, NAMES};
use summary::{Run, Summary};

/// Options of one comparison.
struct Options {
    rounds: usize,
    scale: f64,
    timeout: Duration,
    out: PathBuf,
    root: PathBuf,
    entries: Vec<&'static suite::Entry>,
    wanted: Vec<&'static str>,
    search_hakmem: Option<PathBuf>,
    no_install: bool,
    no_build: bool,
}

/// The workspace this binary was built from (its `bench/` parent), else
/// the current directory.
fn default_root() -> PathBuf {
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    match built {
        Some(root) if root.join("Cargo.toml").is_file() => root,
        _ => PathBuf::from("."),
    }
}

fn parse(words: &[String]) -> Result<Options, String> {
    let mut args = Args::parse(words)?;
    let quick = args.take_flag("--quick");
    let rounds = args.take_or("--rounds", if quick { 1usize } else { 5 })?;
    let scale = args.take_or("--scale", if quick { 0.3f64 } else { 1.0 })?;
    let timeout = args.take_or("--timeout", if quick { 60.0f64 } else { 120.0 })?;
    let only = args.take_str("--only")?;
    let allocators = args.take_str("--allocators")?;
    let root = args
        .take_str("--root")?
        .map_or_else(default_root, PathBuf::from);
    let out = args
        .take_str("--out")?
        .map_or_else(|| root.join("bench/results"), PathBuf::from);
    let search_hakmem = args.take_str("--hakmem")?.map(PathBuf::from);
    let no_install = args.take_flag("--no-install");
    let no_build = args.take_flag("--no-build");
    args.finish()?;
    let positive = |x: f64| x > 0.0; // false for NaN too
    if rounds == 0 || !positive(scale) || !positive(timeout) {
        return Err("--rounds, --scale and --timeout must be positive".into());
    }
    let wanted = match allocators {
        None => DEFAULT_NAMES.to_vec(),
        Some(list) => {
            let mut wanted = Vec::new();
            for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let known = NAMES.iter().find(|n| **n == name).ok_or_else(|| {
                    format!(
                        "--allocators: unknown `{name}`; known: {}",
                        NAMES.join(", ")
                    )
                })?;
                wanted.push(*known);
            }
            // Keep the table order.
            NAMES
                .iter()
                .copied()
                .filter(|n| wanted.contains(n))
                .collect()
        }
    };
    Ok(Options {
        rounds,
        scale,
        timeout: Duration::from_secs_f64(timeout),
        out,
        root,
        entries: suite::select(only.as_deref())?,
        wanted,
        search_hakmem,
        no_install,
        no_build,
    })
}

/// The child's command line for one suite entry.
fn child_args(entry: &suite::Entry, scale: f64) -> Vec<String> {
    let mut args = vec!["run".to_string(), entry.workload.to_string()];
    args.extend(entry.args.iter().map(|a| a.to_string()));
    args.extend(["--scale".to_string(), format!("{scale}")]);
    args
}

/// Checks that a candidate loads and that its preload really replaces
/// malloc; returns why not otherwise. Deliberately tiny: a candidate that
/// crashes on real workloads should show that in the table, not vanish.
fn sanity_check(exe: &Path, candidate: &Candidate) -> Result<(), String> {
    let args: Vec<String> = ["run", "pair", "--iters", "1000"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let result = child::run(
        exe,
        &args,
        candidate.preload.as_deref(),
        Duration::from_secs(30),
    )
    .map_err(|f| format!("smoke run {f}"))?;
    let from = result
        .fields
        .get("malloc_from")
        .cloned()
        .unwrap_or_default();
    let expected: Vec<String> = match &candidate.preload {
        None => vec!["libc.so.6".into()],
        Some(path) => {
            let mut names = vec![file_name(path)];
            if let Ok(real) = path.canonicalize() {
                names.push(file_name(&real));
            }
            names
        }
    };
    if expected.contains(&from) {
        Ok(())
    } else {
        Err(format!(
            "malloc comes from `{from}`, not {}: the preload did not take effect",
            expected.join(" or ")
        ))
    }
}

/// `path` as the results show it: relative to the workspace root `root`
/// when it lies under it (a results file then does not name the directory
/// the repository was cloned into), else as it is.
fn shown_path(path: &Path, root: &Path) -> PathBuf {
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    match (canonical(path), canonical(root)) {
        (Some(full), Some(base)) => match full.strip_prefix(&base) {
            Ok(inside) => inside.to_path_buf(),
            Err(_) => path.to_path_buf(),
        },
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod shown_path_tests {
    use super::*;

    #[test]
    fn paths_under_the_root_are_shown_relative_and_others_as_they_are() {
        let root = default_root();
        let lib = root.join("bench/Cargo.toml");
        assert_eq!(shown_path(&lib, &root), PathBuf::from("bench/Cargo.toml"));
        let outside = Path::new("/usr/lib/x86_64-linux-gnu/libdoesnotexist.so");
        assert_eq!(shown_path(outside, &root), outside);
        assert_eq!(shown_path(Path::new("/"), &root), Path::new("/"));
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The column every ratio divides by: the current mimalloc, else Debian's,
/// else glibc.
fn reference(candidates: &[Candidate]) -> Option<usize> {
    ["mimalloc-current", "mimalloc", "glibc"]
        .iter()
        .find_map(|name| candidates.iter().position(|c| c.name == *name))
}

/// `hakmem-bench compare ...`.
pub fn main(words: &[String]) -> Result<(), String> {
    let options = parse(words)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut notes = Vec::new();
    let search = Search {
        root: &options.root,
        hakmem: options.search_hakmem.clone(),
        no_install: options.no_install,
        no_build: options.no_build,
    };
    let found = candidates::discover(&search, &options.wanted, &mut notes);
    let mut ready = Vec::new();
    for candidate in found {
        match sanity_check(&exe, &candidate) {
            Ok(()) => ready.push(candidate),
            Err(why) => notes.push(format!("{}: skipped: {why}", candidate.name)),
        }
    }
    for note in &notes {
        println!("note: {note}");
    }
    if ready.is_empty() {
        return Err("no allocator to compare".into());
    }
    for c in &ready {
        let lib = c
            .preload
            .as_ref()
            .map_or("(none)".to_string(), |p| p.display().to_string());
        println!("candidate {:<17} {lib}  [{}]", c.name, c.origin);
    }

    let scaling = parallelism::measure();
    let speedup = scaling.speedup();
    let mut scaling_line = format!(
        "parallelism check: 1 thread {:.3} s, 2 threads {:.3} s: speedup {speedup:.2}×",
        scaling.one_thread, scaling.two_threads
    );
    if speedup < 1.6 {
        scaling_line.push_str(
            " — this machine is delivering about one core right now: \
             results of multi-threaded workloads will be skewed",
        );
    }
    println!("{scaling_line}");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: String = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    println!("load average at start: {load}");

    let total = options.rounds * options.entries.len() * ready.len();
    println!(
        "{} workloads × {} allocators × {} rounds = {total} runs (scale {}, timeout {:.0} s)",
        options.entries.len(),
        ready.len(),
        options.rounds,
        options.scale,
        options.timeout.as_secs_f64()
    );
    let started = std::time::Instant::now();
    let mut runs = Vec::new();
    for round in 1..=options.rounds {
        for (e, entry) in options.entries.iter().enumerate() {
            for (c, candidate) in ready.iter().enumerate() {
                print!(
                    "[round {round}/{}] {} × {} ... ",
                    options.rounds, entry.label, candidate.name
                );
                let _ = std::io::stdout().flush();
                let args = child_args(entry, options.scale);
                let outcome =
                    child::run(&exe, &args, candidate.preload.as_deref(), options.timeout);
                match &outcome {
                    Ok(r) => println!(
                        "{:.3} s, {:.1} MiB",
                        r.number("seconds").unwrap_or(f64::NAN),
                        r.number("peak_rss_kib").unwrap_or(f64::NAN) / 1024.0
                    ),
                    Err(failure) => println!("{failure}"),
                }
                runs.push(Run {
                    round,
                    entry: e,
                    candidate: c,
                    outcome,
                });
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();

    let labels: Vec<String> = options
        .entries
        .iter()
        .map(|e| e.label.to_string())
        .collect();
    let names: Vec<String> = ready.iter().map(|c| c.name.to_string()).collect();
    let reference = reference(&ready);
    let summary = Summary::build(&labels, &names, reference, &runs);
    let ref_name = reference.map_or("none".to_string(), |r| names[r].clone());

    println!(
        "\nTime for the fixed work (median of {} round(s)), ratio to {ref_name}; lower is better",
        options.rounds
    );
    print!("{}", render::plain(&render::time_grid(&summary)));
    if let Some(grid) = render::versus_best_grid(&summary) {
        println!("\nhakmem against the best peer (spread: slowest round / fastest - 1)");
        print!("{}", render::plain(&grid));
    }
    println!("\nPeak RSS (median), ratio to {ref_name}; lower is better");
    print!("{}", render::plain(&render::rss_grid(&summary)));
    if let Some(grid) = render::extras_grid(&summary) {
        println!();
        print!("{}", render::plain(&grid));
    }
    let failures = render::failure_lines(&summary);
    for line in &failures {
        println!("FAILED: {line}");
    }

    let context = Context {
        options: &options,
        ready: &ready,
        notes: &notes,
        scaling_line: &scaling_line,
        load: &load,
        elapsed,
        ref_name: &ref_name,
    };
    write_outputs(&context, &summary, &runs)?;
    println!(
        "\nwrote {}/results.md, ratios.svg, runs.tsv ({elapsed:.0} s of runs)",
        options.out.display()
    );
    // The #[global_allocator] comparison for Rust programs.
    let ga_rounds = options.rounds.max(3);
    match crate::ga_compare::run(ga_rounds, options.scale, 2) {
        Ok(md) => {
            println!("\n{md}");
            let path = options.out.join("ga.md");
            std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("wrote {}", path.display());
        }
        Err(e) => println!("note: #[global_allocator] comparison skipped: {e}"),
    }
    Ok(())
}

/// What the written report says besides the tables.
struct Context<'a> {
    options: &'a Options,
    ready: &'a [Candidate],
    notes: &'a [String],
    scaling_line: &'a str,
    load: &'a str,
    elapsed: f64,
    ref_name: &'a str,
}

fn write_outputs(cx: &Context, summary: &Summary, runs: &[Run]) -> Result<(), String> {
    let out = &cx.options.out;
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let write = |name: &str, text: &str| {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write("results.md", &results_markdown(cx, summary))?;
    let title = format!("hakmem-bench: time ratio to {} per workload", cx.ref_name);
    write("ratios.svg", &svg::ratio_chart(&summary.time, &title))?;
    write("runs.tsv", &runs_tsv(cx, runs))
}

fn results_markdown(cx: &Context, summary: &Summary) -> String {
    let o = cx.options;
    let mut md = String::from("# hakmem-bench comparison\n\n");
    let command: Vec<String> = std::env::args().skip(1).collect();
    md.push_str(&format!(
        "- command: `hakmem-bench {}`\n",
        command.join(" ")
    ));
    md.push_str(&format!("- date: {} UTC\n", utc_now()));
    md.push_str(&format!("- machine: {}\n", machine()));
    md.push_str(&format!("- {}\n", cx.scaling_line));
    md.push_str(&format!("- load average at start: {}\n", cx.load));
    md.push_str(&format!(
        "- {} round(s), interleaved; scale {}; timeout {:.0} s; {:.0} s of runs\n",
        o.rounds,
        o.scale,
        o.timeout.as_secs_f64(),
        cx.elapsed
    ));
    md.push_str(&format!("- ratios are to **{}**\n\n", cx.ref_name));
    md.push_str("| allocator | library | origin |\n| :--- | :--- | :--- |\n");
    for c in cx.ready {
        let lib = c.preload.as_ref().map_or("-".to_string(), |p| {
            format!("`{}`", shown_path(p, &cx.options.root).display())
        });
        md.push_str(&format!("| {} | {lib} | {} |\n", c.name, c.origin));
    }
    for note in cx.notes {
        md.push_str(&format!("\n> {note}\n"));
    }
    md.push_str(&format!(
        "\n## Time for the fixed work\n\nMedian seconds; (ratio to {}); lower is better. \
         `*`: some rounds failed (see below).\n\n",
        cx.ref_name
    ));
    md.push_str(&render::markdown(&render::time_grid(summary)));
    if let Some(grid) = render::versus_best_grid(summary) {
        md.push_str(
            "\n## hakmem against the best peer\n\nPer workload, the fastest peer's median time and \
             hakmem's. Spread: a cell's slowest round over its fastest, minus 1; a ratio \
             within the spreads is noise.\n\n",
        );
        md.push_str(&render::markdown(&grid));
    }
    md.push_str(&format!("\n![time ratios](ratios.svg)\n\n## Peak RSS\n\nMedian VmHWM; (ratio to {}); lower is better.\n\n", cx.ref_name));
    md.push_str(&render::markdown(&render::rss_grid(summary)));
    if let Some(grid) = render::extras_grid(summary) {
        md.push_str("\n## Workload-specific measures (medians)\n\n");
        md.push_str(&render::markdown(&grid));
    }
    let failures = render::failure_lines(summary);
    if !failures.is_empty() {
        md.push_str("\n## Failed runs\n\n");
        for line in failures {
            md.push_str(&format!("- {line}\n"));
        }
    }
    md.push_str("\n## Workloads\n\n| row | command |\n| :--- | :--- |\n");
    for entry in &o.entries {
        md.push_str(&format!(
            "| {} | `hakmem-bench {}` |\n",
            entry.label,
            child_args(entry, o.scale).join(" ")
        ));
    }
    md
}

fn runs_tsv(cx: &Context, runs: &[Run]) -> String {
    let mut tsv = String::from(
        "round\tworkload\tallocator\tstatus\tseconds\tpeak_rss_kib\tops_per_sec\tresult\n",
    );
    for run in runs {
        let label = cx.options.entries[run.entry].label;
        let name = cx.ready[run.candidate].name;
        match &run.outcome {
            Ok(r) => {
                let field = |k: &str| r.fields.get(k).cloned().unwrap_or_default();
                tsv.push_str(&format!(
                    "{}\t{label}\t{name}\tok\t{}\t{}\t{}\t{}\n",
                    run.round,
                    field("seconds"),
                    field("peak_rss_kib"),
                    field("ops_per_sec"),
                    r.line()
                ));
            }
            Err(f) => tsv.push_str(&format!(
                "{}\t{label}\t{name}\t{}\t\t\t\t{f}\n",
                run.round,
                f.short()
            )),
        }
    }
    tsv
}

/// CPU model, core count and kernel, from /proc.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{model}, {cpus} vCPUs, Linux {}", kernel.trim())
}

/// The current UTC time as `YYYY-MM-DD HH:MM`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs % 86_400 / 3600,
        secs % 3600 / 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_match_known_days() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn the_reference_prefers_current_mimalloc_then_debian_then_glibc() {
        let cand = |name: &'static str| Candidate {
            name,
            preload: None,
            origin: String::new(),
        };
        assert_eq!(
            reference(&[cand("glibc"), cand("mimalloc"), cand("mimalloc-current")]),
            Some(2)
        );
        assert_eq!(reference(&[cand("glibc"), cand("mimalloc")]), Some(1));
        assert_eq!(reference(&[cand("jemalloc"), cand("glibc")]), Some(1));
        assert_eq!(reference(&[cand("jemalloc")]), None);
    }

    #[test]
    fn quick_means_one_round_and_a_smaller_scale() {
        let words: Vec<String> = [
            "--quick",
            "--only",
            "larson",
            "--allocators",
            "glibc,jemalloc",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let o = parse(&words).unwrap();
        assert_eq!(o.rounds, 1);
        assert!(o.scale < 1.0);
        assert_eq!(o.wanted, ["glibc", "jemalloc"]);
        assert_eq!(o.entries.len(), 2);
        assert!(parse(&["--allocators".to_string(), "nope".to_string()]).is_err());
    }
}
