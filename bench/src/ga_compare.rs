//! `hakmem-bench ga-compare`: the `#[global_allocator]` comparison for Rust
//! programs. The same Rust workload (`src/ga_workload.rs`: collections built
//! and dropped, strings, boxed trees, data handed between threads) compiled
//! three times with a different global allocator — `ga-hakmem`,
//! `ga-mimalloc` (the `mimalloc` crate, a current mimalloc), `ga-system` —
//! run interleaved for several rounds; medians and ratios to mimalloc.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::args::Args;
use crate::stats::median;

const WHO: [&str; 3] = ["hakmem", "mimalloc", "system"];

/// Runs the comparison; returns the markdown table.
pub fn run(rounds: usize, scale: f64, threads: usize) -> Result<String, String> {
    let dir = std::env::current_exe()
        .map_err(|e| format!("cannot find own binary: {e}"))?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let bins: Vec<PathBuf> = WHO.iter().map(|w| dir.join(format!("ga-{w}"))).collect();
    if let Some(missing) = bins.iter().find(|b| !b.is_file()) {
        return Err(format!(
            "{} not built (cargo build --release -p hakmem-bench builds the ga-* binaries)",
            missing.display()
        ));
    }
    let mut secs: [Vec<f64>; 3] = Default::default();
    let mut rss: [Vec<f64>; 3] = Default::default();
    for round in 1..=rounds {
        for (i, bin) in bins.iter().enumerate() {
            print!("[ga round {round}/{rounds}] {} ... ", WHO[i]);
            let out = Command::new(bin)
                .args([
                    "--threads",
                    &threads.to_string(),
                    "--scale",
                    &scale.to_string(),
                ])
                .output()
                .map_err(|e| format!("{}: {e}", bin.display()))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text
                .lines()
                .find(|l| l.starts_with("RESULT "))
                .ok_or_else(|| format!("{}: no RESULT line ({})", bin.display(), out.status))?;
            let field = |k: &str| {
                line.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(k).and_then(|v| v.strip_prefix('=')))
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN)
            };
            secs[i].push(field("seconds"));
            rss[i].push(field("peak_rss_kib") / 1024.0);
            println!(
                "{:.3} s, {:.1} MiB",
                field("seconds"),
                field("peak_rss_kib") / 1024.0
            );
        }
    }
    let t: Vec<f64> = secs.iter().map(|v| median(v).unwrap_or(f64::NAN)).collect();
    let r: Vec<f64> = rss.iter().map(|v| median(v).unwrap_or(f64::NAN)).collect();
    let mut md = format!(
        "#[global_allocator] comparison (Rust workload, {threads} threads, scale {scale}, {rounds} interleaved rounds, medians; ratio to mimalloc):\n\n\
         | allocator | time | ratio | peak RSS | ratio |\n| :--- | ---: | ---: | ---: | ---: |\n"
    );
    for i in 0..3 {
        md.push_str(&format!(
            "| {} | {:.3} s | {:.2}× | {:.1} MiB | {:.2}× |\n",
            WHO[i],
            t[i],
            t[i] / t[1],
            r[i],
            r[i] / r[1]
        ));
    }
    Ok(md)
}

pub fn main(words: &[String]) -> Result<(), String> {
    let mut args = Args::parse(words)?;
    let quick = args.take_flag("--quick");
    let rounds = args.take_or("--rounds", if quick { 3usize } else { 5 })?;
    let scale = args.take_or("--scale", if quick { 0.3f64 } else { 1.0 })?;
    let threads = args.take_or("--threads", 2usize)?;
    let out = args.take_str("--out")?;
    args.finish()?;
    if rounds == 0 || scale.is_nan() || scale <= 0.0 || threads == 0 {
        return Err("--rounds, --scale and --threads must be positive".into());
    }
    let md = run(rounds, scale, threads)?;
    println!("\n{md}");
    if let Some(dir) = out {
        std::fs::create_dir_all(&dir).map_err(|e| format!("{dir}: {e}"))?;
        let path = Path::new(&dir).join("ga.md");
        std::fs::write(&path, &md).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
