//! `hakmem-bench`: allocator benchmark workloads over the C ABI, and the
//! driver that runs them side by side under several `LD_PRELOAD`ed
//! allocators. See `bench/README.md`.

mod args;
mod budget;
mod cabi;
mod compare;
mod ga_compare;
mod report;
mod rng;
mod stats;
mod workloads;

use std::process::ExitCode;

const USAGE: &str = "\
usage:
  hakmem-bench run <workload> [--threads N] [--iters N | --seconds S] [--seed S]
                              [--scale F] [workload options]
  hakmem-bench compare [--rounds R] [--quick] [--only w1,w2] [--out DIR]
  hakmem-bench ga-compare [--rounds R] [--quick] [--threads N] [--out DIR]   (#[global_allocator] in Rust)
                       [--allocators a,b] [--hakmem PATH] [--scale F]
                       [--timeout SECS] [--no-install] [--no-build]
  hakmem-bench list

`run` does a fixed amount of work by default (each workload's default
iterations, times --scale) and prints one `RESULT key=value ...` line and a
human line. `--seconds S` instead runs for S seconds and counts the work.";

fn main() -> ExitCode {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let outcome = match words.first().map(String::as_str) {
        Some("run") => match words.get(1) {
            Some(name) => workloads::run_cli(name, &words[2..]).map(|result| {
                println!("{}", result.line());
                println!("{}", result.human());
            }),
            None => Err("run: which workload? (see `hakmem-bench list`)".to_string()),
        },
        Some("compare") => compare::main(&words[1..]),
        Some("ga-compare") => ga_compare::main(&words[1..]),
        Some("list") => {
            for w in workloads::ALL {
                println!(
                    "{:<15} threads={} iters={:<11} {}",
                    w.name, w.default_threads, w.default_iters, w.summary
                );
            }
            Ok(())
        }
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => Err(USAGE.to_string()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("hakmem-bench: {message}");
            ExitCode::from(2)
        }
    }
}
