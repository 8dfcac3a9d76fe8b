//! `hakmem-sim`: replay, format, minimize, generate and explore traces.
//!
//! ```text
//! hakmem-sim replay FILE|-      [--production] [--check-every K] [--zoo BUG]
//! hakmem-sim fmt FILE           raw fuzz input -> text trace (stdout)
//! hakmem-sim minimize FILE      [-o OUT] [--production] [--zoo BUG] [--seconds T]
//! hakmem-sim gen --seed S --ops N --mix NAME [--parked-heaps N] [--bytes] [-o FILE]
//! hakmem-sim explore --seconds T --seed S [--ops N] [--out DIR] [--production] [--zoo BUG]
//! ```
//! Exit status: 0 when everything held, 1 on a violation, 2 on bad usage
//! or unreadable input.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hakmem_sim::explore::{explore, ExploreOptions};
use hakmem_sim::minimize::{minimize, MinimizeOptions};
use hakmem_sim::{decode, encode, generate, headers, run, with_headers, Mix, RunConfig, Trace};

const USAGE: &str = "usage:
  hakmem-sim replay FILE|-      [--production] [--check-every K] [--zoo BUG]
  hakmem-sim fmt FILE           (raw fuzz input -> text trace on stdout)
  hakmem-sim minimize FILE      [-o OUT] [--production] [--zoo BUG] [--seconds T]
  hakmem-sim gen --seed S --ops N --mix random|larson|producer-consumer|slab-churn [--parked-heaps N] [--bytes] [-o FILE]
  hakmem-sim explore --seconds T --seed S [--ops N] [--out DIR] [--production] [--zoo BUG] [--no-fork]
  hakmem-sim zoo [--seconds T] [--bugs a,b] [--tools explore,alloc_ops,shuttle] [--seed S] [--repro-dir DIR] [--md FILE]
                                (needs --features zoo; alloc_ops needs cargo-fuzz and nightly)";

struct Args {
    pos: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

/// The flags that stand alone.
const SWITCHES: [&str; 3] = ["--production", "--bytes", "--no-fork"];

impl Args {
    /// Splits `v` into positional words and flags; a flag hakmem-sim does
    /// not know is an error (a misspelt one would otherwise be ignored).
    fn parse(v: &[String]) -> Result<Args, String> {
        let takes_value = [
            "--parked-heaps",
            "--check-every",
            "--zoo",
            "-o",
            "--seconds",
            "--seed",
            "--ops",
            "--mix",
            "--out",
            "--bugs",
            "--repro-dir",
            "--md",
            "--tools",
        ];
        let (mut pos, mut flags) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < v.len() {
            let a = &v[i];
            if a.starts_with('-') && a != "-" {
                let name = a.split_once('=').map_or(a.as_str(), |(k, _)| k);
                if !takes_value.contains(&name) && !SWITCHES.contains(&name) {
                    return Err(format!("unknown flag '{name}'\n{USAGE}"));
                }
                if let Some((k, val)) = a.split_once('=') {
                    flags.push((k.to_string(), Some(val.to_string())));
                } else if takes_value.contains(&a.as_str()) {
                    flags.push((a.clone(), v.get(i + 1).cloned()));
                    i += 1;
                } else {
                    flags.push((a.clone(), None));
                }
            } else {
                pos.push(a.clone());
            }
            i += 1;
        }
        Ok(Args { pos, flags })
    }

    fn has(&self, k: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == k)
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.flags
            .iter()
            .find(|(f, _)| f == k)
            .and_then(|(_, v)| v.as_deref())
    }

    fn num<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, String> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("{k}: cannot parse '{v}' as a number")),
        }
    }
}

/// The run configuration from the flags; for `replay` and `minimize`,
/// `file_headers` are the trace file's `# key: value` headers, whose
/// `geometry` applies unless `--production` is given.
fn config(args: &Args, file_headers: &[(String, String)]) -> Result<RunConfig, String> {
    let mut cfg = if args.has("--production") {
        RunConfig::production()
    } else {
        RunConfig::for_headers(file_headers)?
    };
    cfg.check_every = args.num("--check-every", 1)?;
    if let Some(name) = args.get("--zoo") {
        let bug = hakmem::Bug::from_name(name).ok_or_else(|| {
            let names: Vec<_> = hakmem::Bug::ALL.iter().map(|b| b.name()).collect();
            format!("--zoo: unknown bug '{name}' (known: {})", names.join(", "))
        })?;
        if !hakmem::Zoo::COMPILED {
            return Err("--zoo needs a build with the zoo feature: cargo run -p hakmem-sim --features zoo -- ...".into());
        }
        cfg.alloc.zoo = cfg.alloc.zoo.with(bug);
    }
    Ok(cfg)
}

/// Reads a trace: the text form (and its headers), or (if the file is not
/// text) raw fuzz bytes. Errors name the file, line and column.
fn load(path: &str) -> Result<(Trace, Vec<(String, String)>), String> {
    let mut data = Vec::new();
    if path == "-" {
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|e| format!("stdin: {e}"))?;
    } else {
        data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    }
    let looks_text = path.ends_with(".trace")
        || (std::str::from_utf8(&data).is_ok()
            && !data.contains(&0)
            && data
                .iter()
                .all(|&b| b == b'\n' || b == b'\t' || b == b'\r' || (32..127).contains(&b)));
    if looks_text {
        let text = String::from_utf8_lossy(&data);
        let trace = Trace::parse(&text)
            .map_err(|e| format!("{path}:{}:{}: {}", e.line, e.column, e.reason))?;
        Ok((trace, headers(&text)))
    } else {
        Ok((decode(&data), Vec::new()))
    }
}

fn replay(args: &Args) -> Result<ExitCode, String> {
    let path = args.pos.get(1).ok_or("replay: which file?")?;
    let (trace, file_headers) = load(path)?;
    let cfg = config(args, &file_headers)?;
    let t0 = Instant::now();
    let r = run(&trace, &cfg);
    let el = t0.elapsed();
    let ops_s = trace.ops.len() as f64 / el.as_secs_f64().max(1e-9);
    match r {
        Ok(rep) => {
            println!(
                "ok: {} ops in {:.3} s ({ops_s:.0} ops/s, a full check every {} ops: {} checks); {} misuse ops reported, {} allocations refused by the OS, {} ops skipped",
                rep.ops,
                el.as_secs_f64(),
                cfg.check_every,
                rep.checks,
                rep.misuse.len(),
                rep.oom,
                rep.skipped
            );
            for (i, e) in rep.misuse.iter().take(5) {
                println!("  op {}: reported {e}", i + 1);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(f) => {
            println!("FAIL {path}: {f}");
            Ok(ExitCode::from(1))
        }
    }
}

fn fmt(args: &Args) -> Result<ExitCode, String> {
    let path = args.pos.get(1).ok_or("fmt: which file?")?;
    let data = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let t = decode(&data);
    let h = vec![(
        "found-by".to_string(),
        format!("fuzz input {path} (hakmem-sim fmt)"),
    )];
    print!("{}", with_headers(&h, &t));
    Ok(ExitCode::SUCCESS)
}

fn cmd_minimize(args: &Args) -> Result<ExitCode, String> {
    let path = args.pos.get(1).ok_or("minimize: which file?")?;
    let (trace, file_headers) = load(path)?;
    let cfg = config(args, &file_headers)?;
    let opts = MinimizeOptions {
        cfg,
        isolate: true,
        budget: Duration::from_secs_f64(args.num("--seconds", 300.0)?),
        verbose: true,
    };
    let Some(m) = minimize(&trace, &opts) else {
        println!("{path}: the trace does not fail; nothing to minimize");
        return Ok(ExitCode::SUCCESS);
    };
    let mut hs: Vec<(String, String)> = if path.ends_with(".trace") || !file_headers.is_empty() {
        file_headers
    } else {
        vec![("found-by".into(), format!("fuzz input {path}"))]
    };
    hs.retain(|(k, _)| k != "violates");
    hs.push(("violates".into(), m.failure_id.clone()));
    if !hs.iter().any(|(k, _)| k == "fixed-by") {
        hs.push(("fixed-by".into(), "(open)".into()));
    }
    let text = with_headers(&hs, &m.trace);
    eprintln!(
        "minimized {} -> {} ops in {} runs, still failing with {}",
        trace.ops.len(),
        m.trace.ops.len(),
        m.runs,
        m.failure_id
    );
    match args.get("-o") {
        Some(out) => std::fs::write(out, text).map_err(|e| format!("{out}: {e}"))?,
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_gen(args: &Args) -> Result<ExitCode, String> {
    let mix: Mix = args
        .get("--mix")
        .unwrap_or("random")
        .parse()
        .map_err(|e| format!("--mix: {e}"))?;
    let seed = args.num("--seed", 0u64)?;
    let ops = args.num("--ops", 1000usize)?;
    let mut t = generate(mix, seed, ops);
    let mut cmd = format!("hakmem-sim gen --mix {mix} --seed {seed} --ops {ops}");
    if let Some(v) = args.get("--parked-heaps") {
        let n = args.num("--parked-heaps", 0usize)?;
        if n > hakmem_sim::trace::MAX_PARKED_HEAPS {
            return Err(format!(
                "--parked-heaps: {v} is more than {}",
                hakmem_sim::trace::MAX_PARKED_HEAPS
            ));
        }
        t.parked_heaps = Some(n);
        cmd.push_str(&format!(" --parked-heaps {n}"));
    }
    let out: Vec<u8> = if args.has("--bytes") {
        encode(&t).ok_or("this trace has no byte form")?
    } else {
        with_headers(&[("found-by".into(), cmd)], &t).into_bytes()
    };
    match args.get("-o") {
        Some(p) => std::fs::write(p, out).map_err(|e| format!("{p}: {e}"))?,
        None => std::io::stdout()
            .write_all(&out)
            .map_err(|e| e.to_string())?,
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_explore(args: &Args) -> Result<ExitCode, String> {
    let mut extra = Vec::new();
    if let Some(b) = args.get("--zoo") {
        extra.push(("zoo".to_string(), b.to_string()));
    }
    let opts = ExploreOptions {
        seconds: args.num("--seconds", 10.0)?,
        seed: args.num("--seed", 1u64)?,
        max_ops: args.num("--ops", 2000usize)?,
        cfg: config(args, &[])?,
        out_dir: Some(PathBuf::from(args.get("--out").unwrap_or("repro"))),
        minimize_budget: Duration::from_secs(60),
        progress: true,
        isolate: !args.has("--no-fork"),
        extra_headers: extra,
    };
    let r = explore(&opts);
    println!(
        "explored {} traces, {} ops in {:.1} s ({:.0} ops/s)",
        r.traces,
        r.ops,
        r.elapsed.as_secs_f64(),
        r.ops as f64 / r.elapsed.as_secs_f64().max(1e-9)
    );
    match r.found {
        None => Ok(ExitCode::SUCCESS),
        Some(f) => {
            println!(
                "FAIL after {:.2} s (trace {}: {}): {}",
                f.time_to_detection.as_secs_f64(),
                f.trace_index,
                f.source,
                f.failure
            );
            println!(
                "minimized {} -> {} ops ({} runs)",
                f.original_len,
                f.minimized.ops.len(),
                f.minimize_runs
            );
            if let Some(p) = &f.path {
                println!("written to {}", p.display());
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn cmd_zoo(args: &Args) -> Result<ExitCode, String> {
    use hakmem_sim::zoo::{
        build_fuzz_binary, explore_tool, fuzz_tool, shuttle_tool, table, write_zoo_repro,
        ToolResult, ZooRow,
    };
    if !hakmem::Zoo::COMPILED {
        return Err("the zoo needs a build with the zoo feature: cargo run --release -p hakmem-sim --features zoo -- zoo".into());
    }
    let budget = Duration::from_secs_f64(args.num("--seconds", 10.0)?);
    let seed = args.num("--seed", 1u64)?;
    let bugs: Vec<hakmem::Bug> = match args.get("--bugs") {
        None => hakmem::Bug::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| hakmem::Bug::from_name(n.trim()).ok_or(format!("--bugs: unknown bug '{n}'")))
            .collect::<Result<_, _>>()?,
    };
    let tools: Vec<String> = args
        .get("--tools")
        .unwrap_or("explore,alloc_ops,shuttle")
        .split(',')
        .map(|t| t.trim().to_string())
        .collect();
    for t in &tools {
        if !["explore", "alloc_ops", "shuttle"].contains(&t.as_str()) {
            return Err(format!(
                "--tools: unknown tool '{t}' (explore, alloc_ops, shuttle)"
            ));
        }
    }
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let fuzz_bin = if tools.iter().any(|t| t == "alloc_ops") {
        eprintln!("zoo: building the alloc_ops fuzz target with the zoo compiled in ...");
        Some(build_fuzz_binary(&root))
    } else {
        None
    };
    let mut rows = Vec::new();
    for bug in bugs {
        eprintln!("zoo: {} ...", bug.name());
        let mut results = Vec::new();
        for t in &tools {
            results.push(match t.as_str() {
                "explore" => explore_tool(bug, budget, seed),
                "alloc_ops" => match fuzz_bin.as_ref().expect("built above") {
                    Ok(bin) => fuzz_tool(bin, &root, bug, budget),
                    Err(e) => ToolResult::skipped("alloc_ops", e.clone()),
                },
                _ => shuttle_tool(bug, budget, 2000, seed),
            });
        }
        let row = ZooRow { bug, results };
        if let Some(dir) = args.get("--repro-dir") {
            if let Some(p) = write_zoo_repro(std::path::Path::new(dir), &row)
                .map_err(|e| format!("{dir}: {e}"))?
            {
                eprintln!("zoo: {} -> {}", bug.name(), p.display());
            }
        }
        rows.push(row);
    }
    let t = table(&rows);
    print!("{t}");
    if let Some(md) = args.get("--md") {
        std::fs::write(md, &t).map_err(|e| format!("{md}: {e}"))?;
    }
    let escaped: Vec<&str> = rows
        .iter()
        .filter(|r| !r.caught())
        .map(|r| r.bug.name())
        .collect();
    if escaped.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        println!("escaped: {}", escaped.join(", "));
        Ok(ExitCode::from(1))
    }
}

fn main() -> ExitCode {
    let v: Vec<String> = std::env::args().skip(1).collect();
    let r = Args::parse(&v).and_then(|args| match args.pos.first().map(String::as_str) {
        Some("replay") => replay(&args),
        Some("fmt") => fmt(&args),
        Some("minimize") => cmd_minimize(&args),
        Some("gen") => cmd_gen(&args),
        Some("explore") => cmd_explore(&args),
        Some("zoo") => cmd_zoo(&args),
        _ => Err(USAGE.to_string()),
    });
    match r {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hakmem-sim: {e}");
            ExitCode::from(2)
        }
    }
}
