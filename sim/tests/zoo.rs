//! The bug zoo's kept traces: each `repro/zoo/<bug>.trace` fails with its
//! `violates:` id when its bug (header `zoo:`) is switched on, and passes
//! when it is off. (The interleaving-only bug 7 is kept as shuttle
//! schedules under `repro/shuttle/zoo/`, replayed by `tests/shuttle_zoo.rs`.)
#![cfg(feature = "zoo")]

use std::path::PathBuf;

use hakmem::Bug;
use hakmem_sim::{headers, run, RunConfig, Trace};

#[test]
fn every_zoo_trace_fails_with_its_bug_and_passes_without() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../repro/zoo");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "trace"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "repro/zoo/ holds {} traces", files.len());
    let mut problems = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let h = headers(&text);
        let get = |k: &str| h.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        let bug = get("zoo")
            .and_then(|n| Bug::from_name(&n))
            .unwrap_or_else(|| panic!("{}: no zoo header", path.display()));
        let want = get("violates").unwrap_or_default();
        let trace = Trace::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut on = RunConfig::tiny();
        on.alloc.zoo = on.alloc.zoo.with(bug);
        match run(&trace, &on) {
            Ok(_) => problems.push(format!("{}: passes with {} on", path.display(), bug.name())),
            Err(f) if f.id() != want => problems.push(format!(
                "{}: fails with {} instead of {want}",
                path.display(),
                f.id()
            )),
            Err(_) => {}
        }
        if let Err(f) = run(&trace, &RunConfig::tiny()) {
            problems.push(format!("{}: fails without the bug: {f}", path.display()));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The minimizer drops a trace setting the failure does not need: bug 1
/// (drain forgets `used`) fails whether or not exited heaps are parked.
#[test]
fn the_minimizer_drops_a_setting_the_failure_does_not_need() {
    use hakmem_sim::minimize::{minimize, MinimizeOptions};
    let trace = Trace::parse(
        "set parked-heaps 1\nt0 alloc p1 16\nt1 alloc p2 48\nt1 exit\nt0 free p1\nt0 drain\n",
    )
    .unwrap();
    let mut cfg = RunConfig::tiny();
    cfg.alloc.zoo = cfg.alloc.zoo.with(Bug::DrainForgetsUsed);
    let opts = MinimizeOptions {
        cfg: cfg.clone(),
        isolate: false,
        budget: std::time::Duration::from_secs(30),
        verbose: false,
    };
    let m = minimize(&trace, &opts).expect("the trace fails with bug 1 on");
    assert_eq!(m.trace.parked_heaps, None, "kept: {}", m.trace);
    assert!(m.trace.ops.len() < trace.ops.len(), "{}", m.trace);
    let f = run(&m.trace, &cfg).expect_err("the minimized trace still fails");
    assert_eq!(f.id(), m.failure_id);
}
